"""Usage metering: meters, usage events, and the prices that rate usage into bills."""
