"""Secrets handling: password hashing for people, keyed digests for random secrets and tokens."""
