"""The portal in a real headless browser (Chromium through selenium) against the `make run`
server: a PKI built, downloaded and revoked through the page alone, every request it makes an
operation of openapi.yaml, no console error, and certificate text never read as HTML."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from chalicelib.api.spec import openapi_document
from tests.conftest import LocalServer

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="no browser: chromium and chromium-driver are not installed "
        "(`make browser-tools` installs them with apt-get where it can)",
    ),
]
WAIT_SECONDS = 15


class Portal:
    """The browser on the portal page, with the few gestures the tests repeat."""

    def __init__(self, driver: Any, url: str, downloads: Path) -> None:
        self.driver = driver
        self.url = url
        self.downloads = downloads
        self.sent: list[tuple[str, str]] = []

    def wait(self, condition: Any) -> Any:
        return WebDriverWait(self.driver, WAIT_SECONDS).until(condition)

    def open(self, hash_route: str) -> None:
        if not self.driver.current_url.startswith(f"{self.url}/portal"):
            self.driver.get(f"{self.url}/portal{hash_route}")
        else:
            self.driver.execute_script("location.hash = arguments[0]", hash_route)
        expected = hash_route or "#/"
        self.wait(lambda d: d.execute_script("return document.body.dataset.ready") == expected)

    def find(self, selector: str) -> Any:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, selector))

    def create(self, kind: str, **fields: str) -> str:
        """Fills the form of `kind` and submits it; the FQDN of the (first) certificate issued."""
        self.open(f"#/create/{kind}")
        for name, value in fields.items():
            control = self.find(f"#field-{name}")
            control.clear()
            control.send_keys(value)
        self.find("form[data-kind] button[type=submit]").click()
        heading = self.wait(lambda d: d.find_element(By.CSS_SELECTOR, "main h2[data-issued]"))
        return heading.get_attribute("data-issued")

    def commands(self) -> dict[str, str]:
        blocks = self.driver.find_elements(By.CSS_SELECTOR, "#commands pre[data-command]")
        return {block.get_attribute("data-command"): block.text for block in blocks}

    def console_errors(self) -> list[dict[str, Any]]:
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def requests_made(self) -> list[tuple[str, str]]:
        """(method, path) of every request the page has sent to the server."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                request = message["params"]["request"]
                if request["url"].startswith(self.url):
                    self.sent.append((request["method"], urlsplit(request["url"]).path))
        return self.sent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    directory = tmp_path_factory.mktemp("portal-server")
    with LocalServer(directory / "certstore", directory / "server.log", workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def portal(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,900"):  # fmt: skip
        options.add_argument(argument)
    prefs = {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    options.add_experimental_option("prefs", prefs)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield Portal(driver, server.url, downloads)
    finally:
        driver.quit()


def _api_operations() -> list[tuple[str, re.Pattern[str]]]:
    spec = openapi_document()
    return [
        (method.upper(), re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"))
        for path, operations in spec["paths"].items()
        for method in operations
    ]


def _wait_for_file(path: Path) -> bytes:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if path.exists() and not path.with_name(path.name + ".crdownload").exists():
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{path.name} was not downloaded: {sorted(path.parent.iterdir())}")


def test_a_pki_is_built_downloaded_and_revoked_through_the_page(
    portal: Portal, tmp_path: Path
) -> None:
    portal.open("")
    assert "No certificates yet" in portal.find("main").text

    assert portal.create("root", fqdn="example.com", organization="Example IoT") == "example.com"
    assert (
        "iotcert create root 'example.com' --organization 'Example IoT'"
        in portal.commands()["iotcert"]
    )
    assert '"$API/certificates/root"' in portal.commands()["curl"]
    portal.create("intermediate", fqdn="devices.example.com", path_length="1")
    portal.create("intermediate", fqdn="cell1.devices.example.com")

    device = portal.create("device", parent_fqdn="cell1.devices.example.com")
    assert device.endswith(".cell1.devices.example.com")
    key = portal.find("#issued-key").get_attribute("value")
    assert key.startswith(f"# {device}\n-----BEGIN PRIVATE KEY-----")
    assert "shown this once" in portal.find(".warning").text

    portal.open(f"#/certificate/{device}")
    fields = {
        element.get_attribute("data-field"): element.text
        for element in portal.driver.find_elements(By.CSS_SELECTOR, "dd[data-field]")
    }
    assert fields["Subject"] == f"CN={device.split('.')[0]}"
    assert fields["Issuer"] == "CN=cell1.devices.example.com"
    assert fields["Key"] == "EC P-256 (EC_P256)"
    extensions = portal.find("main table").text
    assert "clientAuth" in extensions and f"DNS:{device}" in extensions
    portal.driver.save_screenshot(str(tmp_path / "certificate.png"))

    portal.find("#pkcs12-password").send_keys("change-me")
    portal.find("#pkcs12-form button[type=submit]").click()
    bundle = _wait_for_file(portal.downloads / f"{device}.p12")
    private_key, certificate, chain = pkcs12.load_key_and_certificates(bundle, b"change-me")
    assert certificate is not None and private_key is not None
    assert certificate.public_key() == private_key.public_key()
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=cell1.devices.example.com",
        "CN=devices.example.com",
        "CN=example.com,O=Example IoT",
    ]
    assert "X-Bundle-Password: $P12_PASSWORD" in portal.commands()["curl"]
    assert "change-me" not in json.dumps(portal.requests_made())  # never in a URL

    Select(portal.find("#revoke-reason")).select_by_value("keyCompromise")
    portal.find("#revoke-form button[type=submit]").click()
    portal.wait(lambda d: d.find_element(By.CSS_SELECTOR, "main h2 .badge.revoked"))
    assert "--reason keyCompromise" in portal.commands()["iotcert"]

    portal.open("#/")
    portal.find("details[data-leaves-of='cell1.devices.example.com'] summary").click()
    row = portal.find(f".node[data-fqdn='{device}']")
    assert row.get_attribute("data-status") == "revoked"
    assert "revoked" in row.text
    assert portal.find(".node[data-fqdn='example.com']").get_attribute("data-status") == "active"
    portal.driver.save_screenshot(str(tmp_path / "tree.png"))

    assert portal.console_errors() == []
    assert (tmp_path / "tree.png").stat().st_size > 0


def test_every_request_of_the_page_is_an_api_operation_or_a_portal_file(portal: Portal) -> None:
    """Runs after the walk-through above (same browser): its requests are in the log."""
    portal.open("#/")
    sent = portal.requests_made()
    api_requests = [(m, p) for m, p in sent if not p.startswith("/portal")]
    operations = _api_operations()
    off_spec = [
        (method, path)
        for method, path in api_requests
        if not any(method == m and pattern.match(path) for m, pattern in operations)
    ]
    assert off_spec == []
    made = {(method, path.rsplit("/", 1)[-1]) for method, path in api_requests}
    expected = {("POST", "device"), ("POST", "bundle"), ("POST", "revoke"), ("GET", "certificates")}
    assert expected <= made
    assert {p for m, p in sent if p.startswith("/portal")} <= {
        "/portal", "/portal/portal.js", "/portal/x509.js", "/portal/portal.css",
        "/portal/icon.svg", "/portal/config.json",
    }  # fmt: skip


def test_html_in_an_fqdn_or_organization_is_shown_as_text(portal: Portal) -> None:
    portal.console_errors()  # what came before is the other tests'
    markup = '<script>window.injected = 1</script><b id="injected">x</b>'
    portal.create("root", fqdn="markup.example.net", organization=markup)
    portal.open("#/certificate/markup.example.net")
    subject = portal.find("dd[data-field='Subject']")
    assert subject.text == f"O={markup}, CN=markup.example.net"

    portal.open("#/create/root")
    name = '<img src=x id="injected">.example.org'
    portal.find("#field-fqdn").send_keys(name)
    portal.find("form[data-kind] button[type=submit]").click()
    error = portal.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-error-for='fqdn']").text or None
    )
    assert error.startswith(f"fqdn: '{name}'")
    assert portal.find("#field-fqdn").get_attribute("aria-invalid") == "true"
    assert portal.driver.find_elements(By.CSS_SELECTOR, "#injected, main script, main b") == []
    assert portal.driver.execute_script("return window.injected") is None
    errors = portal.console_errors()  # the refused request (400) only
    assert all("status of 400" in entry["message"] for entry in errors), errors


def test_a_phone_width_screen_and_labelled_controls(portal: Portal, tmp_path: Path) -> None:
    portal.driver.set_window_size(390, 844)
    try:
        for route in ("#/", "#/create/server", "#/certificate/example.com"):
            portal.open(route)
            overflow = portal.driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, route
        unlabelled = portal.driver.execute_script(
            "return [...document.querySelectorAll('main input, main select, main textarea')]"
            ".filter((c) => c.labels.length === 0).map((c) => c.id)"
        )
        assert unlabelled == []
        portal.driver.save_screenshot(str(tmp_path / "phone.png"))
    finally:
        portal.driver.set_window_size(1280, 900)
    assert portal.console_errors() == []
