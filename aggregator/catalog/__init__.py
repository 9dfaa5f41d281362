"""Plans, subscriptions and environments: recurring fees the service rates into bills itself at
each close (docs/plans.md)."""
