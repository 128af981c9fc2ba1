"""ESPI (NAESB REQ.21) documents: namespaces, schemas, feed reading and writing."""
