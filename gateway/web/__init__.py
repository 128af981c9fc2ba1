"""Falcon plumbing shared by every resource: middleware, request helpers, body limits."""
