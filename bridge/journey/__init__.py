"""The whole charging journey: Beckn orders joined to OCPI tokens, commands, sessions and CDRs."""
