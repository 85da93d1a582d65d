"""The station's REST API for MES/ERP."""

from lineguard.api.app import ApiServer, ApiUser, api_users, create_app, prometheus_text, resolve_token

__all__ = ["ApiServer", "ApiUser", "api_users", "create_app", "prometheus_text", "resolve_token"]
