"""Supply chain: serving images (daemonless OCI and Docker SDK builders) and OCI layouts.

``mlci.supply.oci`` reads and writes OCI image layouts; ``mlci.supply.build`` builds serving
images without a container engine; ``mlci.supply.docker_build`` builds a user's Dockerfile
through the Docker Engine API (Docker or Podman).
"""
