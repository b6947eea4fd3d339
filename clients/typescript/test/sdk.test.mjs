// The TypeScript SDK against a live passflow: this script builds passflow,
// starts it on a fresh SQLite file, and drives it through dist/ (the
// compiled SDK).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Passflow, PassflowError } from "../dist/index.js";

const repo = resolve(fileURLToPath(import.meta.url), "../../../..");
const dir = mkdtempSync(join(tmpdir(), "passflow-ts-"));
const bin = join(dir, "passflow");
const db = join(dir, "passflow.db");
const servers = [];
let baseUrl;

/** Starts passflow on db with extra flags and returns its URL. */
async function serve(...flags) {
  const server = spawn(bin, ["serve", "--addr", "127.0.0.1:0", "--db", db, "--access-token-ttl", "5s", ...flags], {
    env: { ...process.env, PASSFLOW_ADMIN_PASSWORD: "ts-admin-password" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  servers.push(server);
  return new Promise((ok, fail) => {
    let log = "";
    server.stderr.on("data", (chunk) => {
      log += chunk;
      const m = /msg=serving addr=(\S+)/.exec(log);
      if (m) ok(`http://${m[1]}`);
    });
    server.on("exit", (code) => fail(new Error(`passflow exited (${code}):\n${log}`)));
    setTimeout(() => fail(new Error(`passflow did not start:\n${log}`)), 30_000).unref();
  });
}

before(async () => {
  execFileSync("go", ["build", "-o", bin, "."], { cwd: repo, stdio: "inherit" });
  const add = (name, scopes) =>
    execFileSync(bin, ["user", "add", name, "--scopes", scopes, "--db", db], { input: `${name}-password\n` });
  baseUrl = await serve();
  add("ts-user", "data:read,data:write");
});

after(() => {
  for (const s of servers) s.kill("SIGTERM");
  rmSync(dir, { recursive: true, force: true });
});

test("a wrong password is invalid_grant", async () => {
  const pf = new Passflow({ baseUrl });
  await assert.rejects(pf.login("ts-user", "not-the-password"), (e) => {
    assert.ok(e instanceof PassflowError);
    assert.equal(e.status, 400);
    assert.equal(e.code, "invalid_grant");
    return true;
  });
});

test("log in, then write, list and delete items", async () => {
  const pf = new Passflow({ baseUrl, clientId: "ts-app" });
  const tokens = await pf.login("TS-User", "ts-user-password");
  assert.equal(tokens.scope, "data:read data:write");
  assert.ok(tokens.refreshToken);

  const me = await pf.api.GET("/users/me");
  assert.equal(me.response.status, 200);
  assert.equal(me.data?.username, "ts-user");

  const put = await pf.api.PUT("/my_data/{key}", { params: { path: { key: "lang" } }, body: { value: "typescript" } });
  assert.equal(put.response.status, 201);
  assert.deepEqual(put.data, { key: "lang", value: "typescript" });

  const list = await pf.api.GET("/my_data");
  assert.deepEqual(list.data, [{ key: "lang", value: "typescript" }]);

  const del = await pf.api.DELETE("/my_data/{key}", { params: { path: { key: "lang" } } });
  assert.equal(del.response.status, 204);
  const missing = await pf.api.DELETE("/my_data/{key}", { params: { path: { key: "lang" } } });
  assert.equal(missing.response.status, 404);
  assert.equal(missing.error?.error, "not_found");
});

test("refresh rotates, and the SDK refreshes on its own", async () => {
  // Refresh when less than 10s are left: with 5s tokens, before every call.
  const pf = new Passflow({ baseUrl, refreshLeeway: 10 });
  const first = await pf.login("ts-user", "ts-user-password");
  const explicit = await pf.refresh();
  assert.notEqual(explicit.accessToken, first.accessToken);
  assert.notEqual(explicit.refreshToken, first.refreshToken);

  const res = await pf.api.GET("/my_data");
  assert.equal(res.response.status, 200);
  assert.notEqual(pf.tokens?.accessToken, explicit.accessToken, "the call did not refresh first");

  // Concurrent calls share one refresh: a second use of a rotated token
  // would revoke the whole login.
  const calls = await Promise.all([pf.api.GET("/my_data"), pf.api.GET("/users/me"), pf.api.GET("/my_data")]);
  for (const c of calls) assert.equal(c.response.status, 200);
});

test("a narrowed login gets insufficient_scope", async () => {
  const pf = new Passflow({ baseUrl });
  await pf.login("ts-user", "ts-user-password", ["data:read"]);
  const res = await pf.api.PUT("/my_data/{key}", { params: { path: { key: "x" } }, body: { value: "y" } });
  assert.equal(res.response.status, 403);
  assert.equal(res.error?.error, "insufficient_scope");
  assert.match(res.response.headers.get("www-authenticate") ?? "", /error="insufficient_scope"/);
});

test("logout revokes the login", async () => {
  const pf = new Passflow({ baseUrl });
  const tokens = await pf.login("ts-user", "ts-user-password");
  await pf.logout();
  const res = await fetch(`${baseUrl}/my_data`, { headers: { Authorization: `Bearer ${tokens.accessToken}` } });
  assert.equal(res.status, 401);
  const again = new Passflow({ baseUrl });
  await again.login("ts-user", "ts-user-password");
  assert.equal((await again.api.GET("/my_data")).response.status, 200);
});

test("the server metadata", async () => {
  const pf = new Passflow({ baseUrl });
  const { data } = await pf.api.GET("/.well-known/oauth-authorization-server");
  assert.equal(data?.issuer, baseUrl);
  assert.equal(data?.token_endpoint, `${baseUrl}/token`);
  assert.deepEqual(data?.response_types_supported, ["none"]);
});

test("cookie mode: the refresh token stays in the cookie", async () => {
  const url = await serve("--refresh-cookie");
  // A cookie jar, as a browser keeps one: by path, forgotten at Max-Age=0.
  const jar = new Map();
  const sent = [];
  const jarFetch = async (input, init) => {
    const req = new Request(input, init);
    const path = new URL(req.url).pathname;
    if (jar.has(path)) req.headers.set("Cookie", `passflow_refresh=${jar.get(path)}`);
    sent.push({ path, csrf: req.headers.get("X-Passflow-CSRF"), credentials: req.credentials });
    const res = await fetch(req);
    for (const c of res.headers.getSetCookie()) {
      const m = /^passflow_refresh=([^;]*);.*\bPath=([^;]+)/.exec(c);
      if (!m) continue;
      if (/Max-Age=0/.test(c)) jar.delete(m[2]);
      else jar.set(m[2], m[1]);
    }
    return res;
  };
  const pf = new Passflow({ baseUrl: url, cookieMode: true, fetch: jarFetch });
  const tokens = await pf.login("ts-user", "ts-user-password");
  assert.equal(tokens.refreshToken, undefined, "the body carried the refresh token");
  assert.ok(jar.get("/token") && jar.get("/token") === jar.get("/revoke"));
  for (const s of sent) {
    assert.equal(s.csrf, "1");
    assert.equal(s.credentials, "include");
  }

  const before = jar.get("/token");
  const next = await pf.refresh();
  assert.notEqual(next.accessToken, tokens.accessToken);
  assert.notEqual(jar.get("/token"), before, "the cookie was not rotated");
  assert.equal((await pf.api.GET("/users/me")).response.status, 200);

  await pf.logout();
  assert.equal(jar.size, 0, "logout did not clear the cookie");
  const res = await fetch(`${url}/users/me`, { headers: { Authorization: `Bearer ${next.accessToken}` } });
  assert.equal(res.status, 401);
  await assert.rejects(pf.refresh(), (e) => e instanceof PassflowError && e.status === 400);
});
