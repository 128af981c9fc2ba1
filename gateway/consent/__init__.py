"""Consent: the lifecycle of a customer's consent (pure domain), plain-language scopes, consent requests, mails."""
