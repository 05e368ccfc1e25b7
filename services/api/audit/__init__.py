"""The audit trail's read route, and who the request's writes are recorded as."""
