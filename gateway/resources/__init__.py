"""Falcon resources, one module per ESPI resource family (NAESB REQ.21 REST binding)."""
