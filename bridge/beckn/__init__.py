"""Beckn 2.0 BPP: transport, signing, callbacks, discover."""
