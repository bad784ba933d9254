"""Operator tools that serve every service: dead-letter queues (`jauge dlq`) and the
gauges the reconciler repaired (`jauge repairs`). No service's code: they read the
broker's topology and progress-svc's repairs through jauge_shared's contracts. The
gateway's `jauge` command mounts them next to its own `jauge users`."""
