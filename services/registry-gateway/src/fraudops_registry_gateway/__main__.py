"""Run the registry-gateway service: `python -m fraudops_registry_gateway`."""

from fraudops.service import serve
from fraudops_registry_gateway.settings import RegistryGatewaySettings

if __name__ == "__main__":
    serve("fraudops_registry_gateway.main:app", RegistryGatewaySettings.service_name, RegistryGatewaySettings)
