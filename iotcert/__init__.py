"""iotcert: the command-line client of iot-cert-service.

It knows the service only through its public HTTP API (chalicelib/openapi.yaml) and never imports
the service's code, so it runs against `make run`, `make run-moto` and a deployed stage alike.
"""
