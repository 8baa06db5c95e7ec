"""Pure mapping between OCPI and Beckn: tariffs, quotes, settlement."""
