// The TypeScript client for passflow: the API's types, generated from
// openapi.yaml by openapi-typescript (src/schema.ts), called through
// openapi-fetch, with a login that keeps its access token fresh.
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type { components, paths };
export type Item = components["schemas"]["Item"];
export type User = components["schemas"]["User"];
export type TokenResponse = components["schemas"]["TokenResponse"];
export type OAuthError = components["schemas"]["OAuthError"];
export type ApiError = components["schemas"]["Error"];

export interface PassflowOptions {
  /** The server's URL, such as https://login.example.com. */
  baseUrl: string;
  /** A registered or self-named client; none is passflow's default public client. */
  clientId?: string;
  /** A confidential client's secret; it is sent with HTTP Basic. */
  clientSecret?: string;
  /** Refresh this many seconds before the access token expires (default 10). */
  refreshLeeway?: number;
  /** A fetch implementation; the global one by default. */
  fetch?: typeof globalThis.fetch;
  /**
   * Cookie mode, for browser apps of a server run with `--refresh-cookie`: the
   * refresh token stays in an HttpOnly cookie the page's scripts cannot read.
   * Calls to /token and /revoke include credentials and the `X-Passflow-CSRF`
   * header; `tokens.refreshToken` stays empty.
   */
  cookieMode?: boolean;
}

/** The header that asks for cookie mode (a custom header: see `cookieMode`). */
export const CSRF_HEADER = "X-Passflow-CSRF";

/** The tokens of a login. */
export interface Tokens {
  accessToken: string;
  refreshToken?: string;
  /** When the access token expires, in milliseconds since the epoch. */
  expiresAt: number;
  scope: string;
}

/** A refusal of the token endpoint (RFC 6749 §5.2), or of another call. */
export class PassflowError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description?: string,
  ) {
    super(`passflow: ${code}${description ? `: ${description}` : ""} (HTTP ${status})`);
    this.name = "PassflowError";
  }
}

const form = (body: Record<string, string | undefined>): string => {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(body)) {
    if (v !== undefined && v !== "") params.set(k, v);
  }
  return params.toString();
};

/** Paths that carry no bearer token. */
const public_ = new Set(["/token", "/revoke", "/.well-known/oauth-authorization-server", "/.well-known/jwks.json"]);

/**
 * A passflow client. Log in, then call `api` (openapi-fetch, typed from the
 * spec): every call carries the access token, refreshed when it is about to
 * expire.
 */
export class Passflow {
  readonly api: Client<paths>;
  #tokens: Tokens | undefined;
  #refreshing: Promise<Tokens> | undefined;

  constructor(private readonly opts: PassflowOptions) {
    this.api = createClient<paths>({
      baseUrl: opts.baseUrl.replace(/\/$/, ""),
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
    });
    this.api.use(this.#bearer());
  }

  /** The current tokens, if logged in. */
  get tokens(): Tokens | undefined {
    return this.#tokens;
  }

  /** Logs in with the password grant. */
  async login(username: string, password: string, scope?: string[]): Promise<Tokens> {
    return this.#grant({ grant_type: "password", username, password, scope: scope?.join(" ") });
  }

  /**
   * Exchanges the refresh token (in cookie mode, the cookie's) for new tokens;
   * the old one stops working.
   */
  async refresh(): Promise<Tokens> {
    const rt = this.#tokens?.refreshToken;
    if (!rt && !this.opts.cookieMode) throw new PassflowError(0, "invalid_request", "not logged in, or no refresh token");
    // One refresh at a time: a second use of a rotated token revokes the login
    // (unless the server allows it for a moment: --refresh-reuse-interval).
    this.#refreshing ??= this.#grant({ grant_type: "refresh_token", refresh_token: rt }).finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /**
   * Revokes the refresh token, and with it every token of this login; in
   * cookie mode, the cookie's, which the server then clears.
   */
  async logout(): Promise<void> {
    const token = this.opts.cookieMode ? undefined : (this.#tokens?.refreshToken ?? this.#tokens?.accessToken);
    if (!token && !this.opts.cookieMode) return;
    const body = token ? { token, token_type_hint: this.#tokens?.refreshToken ? "refresh_token" : "access_token" } : {};
    const { error, response } = await this.api.POST("/revoke", {
      body,
      bodySerializer: (b) => form({ ...(b as Record<string, string | undefined>), ...this.#clientBody() }),
      headers: this.#clientHeaders(),
      ...this.#credentials(),
    });
    if (error) throw new PassflowError(response.status, error.error, error.error_description);
    this.#tokens = undefined;
  }

  async #grant(body: Record<string, string | undefined>): Promise<Tokens> {
    const { data, error, response } = await this.api.POST("/token", {
      body: body as components["schemas"]["TokenRequest"],
      bodySerializer: (b) => form({ ...(b as Record<string, string | undefined>), ...this.#clientBody() }),
      headers: this.#clientHeaders(),
      ...this.#credentials(),
    });
    if (error || !data) {
      const e = error as OAuthError | undefined;
      throw new PassflowError(response.status, e?.error ?? "server_error", e?.error_description);
    }
    this.#tokens = {
      accessToken: data.access_token,
      expiresAt: Date.now() + data.expires_in * 1000,
      scope: data.scope,
      ...(data.refresh_token ? { refreshToken: data.refresh_token } : {}),
    };
    return this.#tokens;
  }

  /** In cookie mode, fetch sends and keeps the refresh cookie. */
  #credentials(): { credentials?: RequestCredentials } {
    return this.opts.cookieMode ? { credentials: "include" } : {};
  }

  #clientHeaders(): Record<string, string> {
    const h: Record<string, string> = { "Content-Type": "application/x-www-form-urlencoded" };
    if (this.opts.cookieMode) h[CSRF_HEADER] = "1";
    const { clientId, clientSecret } = this.opts;
    if (clientId && clientSecret) {
      const enc = (s: string) => encodeURIComponent(s);
      h["Authorization"] = `Basic ${btoa(`${enc(clientId)}:${enc(clientSecret)}`)}`;
    }
    return h;
  }

  #clientBody(): Record<string, string | undefined> {
    return this.opts.clientSecret ? {} : { client_id: this.opts.clientId };
  }

  #bearer(): Middleware {
    return {
      onRequest: async ({ request, schemaPath }) => {
        if (public_.has(schemaPath) || !this.#tokens) return request;
        const leeway = (this.opts.refreshLeeway ?? 10) * 1000;
        if ((this.#tokens.refreshToken || this.opts.cookieMode) && Date.now() + leeway >= this.#tokens.expiresAt) {
          await this.refresh();
        }
        request.headers.set("Authorization", `Bearer ${this.#tokens.accessToken}`);
        return request;
      },
    };
  }
}
