"""iot-cert-service: a self-service certificate authority for IoT development and test fleets."""
