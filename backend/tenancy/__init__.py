"""Tenancy: workspaces, members and roles, invitations, and the tenant context of a request."""
