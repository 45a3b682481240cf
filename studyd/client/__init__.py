"""The client side: the REST client, the report writer, the demo and readiness waits."""
