"""The platform-neutral studio: sessions, flow, account and admin desks."""
