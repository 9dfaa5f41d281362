"""Usage metering: usage events, their store and rollups, usage rated at the close (docs/metering.md)."""
