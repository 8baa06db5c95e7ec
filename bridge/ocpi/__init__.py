"""OCPI 2.2.1, eMSP side: models, transport, one module per OCPI module, client."""

VERSION = "2.2.1"
