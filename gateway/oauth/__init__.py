"""OAuth 2.0 authorization server (RFC 6749) for Green Button: grammar, registration, oauthlib composition."""
