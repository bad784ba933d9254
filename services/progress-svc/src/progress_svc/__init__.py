"""progress-svc: turns progress-bearing events into the `progress` read model."""
