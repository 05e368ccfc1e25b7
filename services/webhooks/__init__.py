"""`modelreg webhooks`: the dispatcher that turns the change feed into signed webhook deliveries."""
