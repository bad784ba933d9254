"""colis-svc: clients, lots, parcels and the parcel task pipeline."""
