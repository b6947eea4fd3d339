package impl

import (
	"context"

	"github.com/passflow/passflow/auth"
	"github.com/passflow/passflow/generated/api"
)

// Register is POST /register.
func (s *Server) Register(ctx context.Context, req api.RegisterRequestObject) (api.RegisterResponseObject, error) {
	ip, err := clientIP(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.accounts.Register(ctx, auth.Registration{
		Username: req.Body.Username, Password: deref(req.Body.Password), Email: req.Body.Email, ClientIP: ip,
	})
	if err != nil {
		return nil, err
	}
	return api.Register201JSONResponse(userJSON(u)), nil
}

// VerifyEmail is POST /email/verify.
func (s *Server) VerifyEmail(ctx context.Context, req api.VerifyEmailRequestObject) (api.VerifyEmailResponseObject, error) {
	if _, err := s.accounts.VerifyEmail(ctx, req.Body.Token); err != nil {
		return nil, err
	}
	return api.VerifyEmail204Response{}, nil
}

// RequestEmailVerification is POST /users/me/email/verify-request.
func (s *Server) RequestEmailVerification(ctx context.Context, _ api.RequestEmailVerificationRequestObject) (api.RequestEmailVerificationResponseObject, error) {
	ip, err := clientIP(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.accounts.RequestVerification(ctx, principal(ctx), ip); err != nil {
		return nil, err
	}
	return api.RequestEmailVerification202Response{}, nil
}

// ForgotPassword is POST /password/forgot: 202 whether or not the account
// exists.
func (s *Server) ForgotPassword(ctx context.Context, req api.ForgotPasswordRequestObject) (api.ForgotPasswordResponseObject, error) {
	ip, err := clientIP(ctx)
	if err != nil {
		return nil, err
	}
	// The spec's ForgotPassword holds exactly one of the two.
	identifier := deref(req.Body.Username)
	if req.Body.Email != nil {
		identifier = *req.Body.Email
	}
	if err := s.accounts.ForgotPassword(ctx, identifier, ip); err != nil {
		return nil, err
	}
	return api.ForgotPassword202Response{}, nil
}

// ResetPassword is POST /password/reset.
func (s *Server) ResetPassword(ctx context.Context, req api.ResetPasswordRequestObject) (api.ResetPasswordResponseObject, error) {
	ip, err := clientIP(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.accounts.ResetPassword(ctx, req.Body.Token, deref(req.Body.NewPassword), ip); err != nil {
		return nil, err
	}
	return api.ResetPassword204Response{}, nil
}
