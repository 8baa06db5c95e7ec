"""ocpi-beckn-bridge: OCPI 2.2.1 eMSP endpoints joined to a Beckn 2.0 BPP."""

__version__ = "0.1.0"
