"""The portal in a real headless browser (Chromium through selenium) against the `make run`
server: a PKI built, downloaded and revoked through the page alone, every request it makes an
operation of openapi.yaml (every POST JSON), no console error, and certificate text never read as
HTML. Every page the tests open is read as a person reads it: what it shows is text (no
`[object ...]`, no `null` or `undefined`), and a PEM box holds what the API serves."""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from chalicelib.api.fields import BY_NAME
from chalicelib.api.spec import openapi_document
from tests.servers import LocalServer

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
NOT_TEXT = re.compile(r"\[object \w+\]|\bnull\b|\bundefined\b")
"""What a page shows when a value that is not text reaches it (a node list, an absent field)."""
AUTOMATIC = "Automatic: the closest CA above the name"


class Portal:
    """The browser on the portal page, with the few gestures the tests repeat."""

    def __init__(self, driver: Any, url: str, downloads: Path) -> None:
        self.driver = driver
        self.url = url
        self.downloads = downloads
        self.sent: list[tuple[str, str]] = []
        self.posts: list[dict[str, Any]] = []

    def wait(self, condition: Any) -> Any:
        return WebDriverWait(self.driver, WAIT_SECONDS).until(condition)

    def open(self, hash_route: str) -> None:
        """Shows the page of `hash_route` (the same page again, fresh) and reads it."""
        expected = hash_route or "#/"
        current = urlsplit(self.driver.current_url)
        if not current.path.startswith("/portal") or not self.driver.current_url.startswith(
            self.url
        ):
            self.driver.get(f"{self.url}/portal{hash_route}")
        elif f"#{current.fragment}" == expected:
            self.driver.refresh()
        else:
            self.driver.execute_script("location.hash = arguments[0]", hash_route)
        self.ready(expected)
        self.assert_shows_only_text()

    def ready(self, hash_route: str) -> None:
        """Waits until the page has shown `hash_route`."""
        self.wait(lambda d: d.execute_script("return document.body.dataset.ready") == hash_route)

    def find(self, selector: str) -> Any:
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, selector))

    def text(self) -> str:
        """What the page shows, as a person reads it (the commands beside it included)."""
        return self.driver.execute_script("return document.body.innerText")

    def assert_shows_only_text(self) -> None:
        shown = self.text()
        assert NOT_TEXT.search(shown) is None, shown
        everything = self.driver.execute_script("return document.body.textContent")
        assert "[object" not in everything

    def fill(self, name: str, value: str) -> None:
        control = self.find(f"#field-{name}")
        if control.tag_name == "select":
            Select(control).select_by_value(value)
        else:
            control.clear()
            control.send_keys(value)

    def create(self, kind: str, **fields: str) -> str:
        """Fills the form of `kind` and submits it; the FQDN of the (first) certificate issued."""
        self.open(f"#/create/{kind}")
        for name, value in fields.items():
            self.fill(name, value)
        self.find("form[data-kind] button[type=submit]").click()
        heading = self.wait(lambda d: d.find_element(By.CSS_SELECTOR, "main h2[data-issued]"))
        self.ready("#/issued")
        self.assert_shows_only_text()
        return heading.get_attribute("data-issued")

    def parent_choices(self, kind: str) -> list[str]:
        """The values the Parent CA select of the form of `kind` offers."""
        self.open(f"#/create/{kind}")
        select = Select(self.find("#field-parent_fqdn"))
        return [option.get_attribute("value") or "" for option in select.options]

    def box(self, box_id: str) -> str:
        return self.find(f"textarea#{box_id}").get_attribute("value")

    def copy(self, box_id: str) -> str:
        """Presses the copy button of the box; what the clipboard then holds."""
        button = self.find(f"button[data-copies='{box_id}']")
        label = button.text
        button.click()
        self.wait(lambda d: button.text == "Copied")
        copied = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, (error) => done(`failed: ${error}`));"
        )
        self.wait(lambda d: button.text == label)  # the button says so for a moment only
        return copied

    def api(self, path: str) -> Any:
        """What the API answers to GET `path`, read without the page."""
        with urllib.request.urlopen(f"{self.url}{path}", timeout=WAIT_SECONDS) as response:
            return json.load(response)

    def certificate(self, fqdn: str) -> Any:
        return self.api(f"/certificates/{quote(fqdn)}")

    def revoke(self, reason: str) -> Any:
        """Chooses the reason and presses Revoke: the confirmation the page asks first."""
        Select(self.find("#revoke-reason")).select_by_value(reason)
        self.find("#revoke-form button[type=submit]").click()
        dialog = self.find("dialog#revoke-dialog[open]")
        self.assert_shows_only_text()
        return dialog

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
                    if request["method"] == "POST":
                        self.posts.append(request)
        return self.sent


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    directory = tmp_path_factory.mktemp("portal-server")
    with LocalServer(directory / "certstore", directory / "server.log", workers=1) as running:
        yield running


@pytest.fixture(scope="module")
def portal(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("SE_AVOID_STATS", "true")
        yield from _browser(server, tmp_path_factory)


def _browser(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """Headless Chromium through the system chromedriver (never selenium-manager)."""
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
    driver.execute_cdp_cmd(  # the copy buttons write, and the tests read, the clipboard
        "Browser.grantPermissions",
        {"origin": server.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
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


def _is_json(request: dict[str, Any]) -> bool:
    """Whether a request the browser sent says `Content-Type: application/json` and sends it."""
    headers = {name.lower(): value for name, value in request["headers"].items()}
    try:
        json.loads(request.get("postData", ""))
    except ValueError:
        return False
    return headers.get("content-type", "").split(";")[0] == "application/json"


def _wait_for_file(path: Path) -> bytes:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if path.exists() and not path.with_name(path.name + ".crdownload").exists():
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{path.name} was not downloaded: {sorted(path.parent.iterdir())}")


def _commands_name_only_existing_cas(portal: Portal) -> list[str]:
    """The CAs the hierarchy's example commands name (`parent=`), each checked to exist."""
    named = re.findall(r"[?&]parent=([^&\"\s]+)", portal.commands()["curl"])
    roots = {item["fqdn"] for item in portal.api("/certificates")["items"]}
    assert set(named) <= roots, (named, roots)
    return named


def test_a_pki_is_built_downloaded_and_revoked_through_the_page(
    portal: Portal, tmp_path: Path
) -> None:
    portal.open("")
    assert "No certificates yet" in portal.find("main").text
    assert _commands_name_only_existing_cas(portal) == []  # an empty store: no CA to name
    assert '"$API/certificates"' in portal.commands()["curl"]
    assert portal.parent_choices("device") == [""]
    assert "No CA can issue yet" in portal.find("main").text

    assert portal.create("root", fqdn="example.com", organization="Example IoT") == "example.com"
    assert (
        "iotcert create root 'example.com' --organization 'Example IoT'"
        in portal.commands()["iotcert"]
    )
    assert '"$API/certificates/root"' in portal.commands()["curl"]
    assert portal.find("main").text.startswith("Issued: example.com")
    assert portal.driver.find_elements(By.CSS_SELECTOR, "#issued-key") == []  # a CA's key: never
    portal.create("intermediate", fqdn="devices.example.com", path_length="1")
    assert portal.parent_choices("intermediate") == ["", "example.com", "devices.example.com"]
    portal.fill("fqdn", "cell1.devices.example.com")
    automatic = portal.find("#field-parent_fqdn option[value='']").text
    assert automatic == "Automatic: devices.example.com"  # the CA the API would pick
    portal.create(
        "intermediate", fqdn="cell1.devices.example.com", parent_fqdn="devices.example.com"
    )

    portal.open("#/")
    assert _commands_name_only_existing_cas(portal) == ["example.com"]
    assert "iotcert list --parent 'example.com'" in portal.commands()["iotcert"]

    cas = ["example.com", "devices.example.com", "cell1.devices.example.com"]
    assert portal.parent_choices("device") == ["", *cas]
    device = portal.create("device", parent_fqdn="cell1.devices.example.com")
    assert device.endswith(".cell1.devices.example.com")
    key = portal.box("issued-key")
    assert key.startswith(f"# {device}\n-----BEGIN PRIVATE KEY-----")
    assert "shown this once" in portal.find(".warning").text
    assert portal.copy("issued-key") == key

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
    served = portal.certificate(device)
    assert portal.box("pem-certificate") == served["certificate"]
    assert portal.box("pem-chain") == served["chain"]
    assert served["chain"].count("-----BEGIN CERTIFICATE-----") == 3
    assert portal.copy("pem-certificate") == served["certificate"]
    assert portal.copy("pem-chain") == served["chain"]
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

    dialog = portal.revoke("keyCompromise")  # asks first: cancelled, nothing revoked
    assert f"Revoke {device}?" in dialog.text
    dialog.find_element(By.CSS_SELECTOR, "button[data-confirm='cancel']").click()
    portal.wait(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog#revoke-dialog"))
    assert portal.certificate(device)["status"] == "active"
    dialog = portal.revoke("keyCompromise")
    dialog.find_element(By.CSS_SELECTOR, "button[data-confirm='revoke']").click()
    portal.wait(lambda d: d.find_element(By.CSS_SELECTOR, "main h2 .badge.revoked"))
    assert "--reason keyCompromise" in portal.commands()["iotcert"]
    portal.assert_shows_only_text()
    revoked = portal.certificate(device)
    assert revoked["status"] == "revoked" and revoked["revocation_reason"] == "keyCompromise"
    shown = portal.find("main").text
    assert "Revocation reason\nkeyCompromise" in shown
    assert portal.box("pem-certificate") == revoked["certificate"]
    assert portal.box("pem-chain") == revoked["chain"]
    assert portal.driver.find_elements(By.CSS_SELECTOR, "#revoke-form, [data-no-chain]") == []

    portal.open("#/certificate/example.com")  # a root: no chain, said in words
    assert portal.box("pem-certificate") == portal.certificate("example.com")["certificate"]
    assert portal.find("[data-no-chain]").text == "None: a root CA is its own issuer."

    portal.open("#/")
    leaves = portal.api("/certificates?parent=cell1.devices.example.com&limit=1000")["items"]
    servers = sum(leaf["type"] == "Server" for leaf in leaves)
    devices = sum(leaf["type"] == "Client" for leaf in leaves)
    summary = portal.find("details[data-leaves-of='cell1.devices.example.com'] summary")
    plural = {1: ""}
    assert summary.text == (
        f"{servers} server{plural.get(servers, 's')}, {devices} device{plural.get(devices, 's')}"
    )
    summary.click()
    row = portal.find(f".node[data-fqdn='{device}']")
    assert row.get_attribute("data-status") == "revoked"
    assert row.text.split("\n")[:2] == [device, "Client"] and "revoked" in row.text
    root = portal.find(".node[data-fqdn='example.com']")
    assert root.get_attribute("data-status") == "active"
    assert root.text.split("\n")[:2] == ["example.com", "Root"] and "active" in root.text
    portal.assert_shows_only_text()
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
    assert portal.posts and all(_is_json(post) for post in portal.posts), portal.posts
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


def test_each_create_form_says_the_rules_of_its_parent(portal: Portal) -> None:
    """The Parent CA's label and hint say the API's rule (chalicelib/api/fields.py): required for
    devices; for intermediates and servers optional, the closest CA above the name by default."""
    parent = BY_NAME["parent_fqdn"]
    for kind in ("root", "intermediate", "server", "device"):
        portal.open(f"#/create/{kind}")
        form = portal.find(f"form[data-kind='{kind}']").text
        assert ("FQDN (required)" in form) == (kind in BY_NAME["fqdn"].required_in)
        if kind not in parent.portal:
            assert "Parent CA" not in form
            continue
        required = kind in parent.required_in
        assert ("Parent CA (required)" in form) == required
        hint = portal.find("#field-parent_fqdn-hint").text
        if required:
            assert hint.startswith("required for devices: the CA that issues them")
        else:
            assert hint.startswith("optional; a CA whose name the FQDN lies under.")
            assert hint.endswith("Automatic: the closest existing CA above the name")
        first = portal.find("#field-parent_fqdn option").text
        assert first == ("Choose the issuing CA" if required else AUTOMATIC)


def test_a_ca_is_revoked_once_its_name_is_typed_and_takes_what_it_issued(portal: Portal) -> None:
    portal.console_errors()  # what came before is the other tests'
    portal.create("root", fqdn="fleet.example.org")
    cell = portal.create(
        "intermediate", fqdn="cell.fleet.example.org", parent_fqdn="fleet.example.org"
    )
    server = portal.create(
        "server", fqdn="mqtt.cell.fleet.example.org", parent_fqdn=cell, sans="localhost"
    )
    assert portal.box("issued-key").startswith(f"# {server}\n-----BEGIN PRIVATE KEY-----")
    device = portal.create("device", parent_fqdn=cell)
    assert cell in portal.parent_choices("server")

    portal.open(f"#/certificate/{cell}")
    renew = next(
        button
        for button in portal.driver.find_elements(By.CSS_SELECTOR, "main section button")
        if button.text == "Renew"
    )
    renew.click()
    heading = portal.find("main h2[data-issued]")
    portal.ready("#/issued")
    assert heading.text == f"Issued: {cell}"
    assert portal.driver.find_elements(By.CSS_SELECTOR, "#issued-key") == []
    portal.assert_shows_only_text()

    portal.open(f"#/certificate/{cell}")
    served = portal.certificate(cell)
    assert served["generation"] == 2
    assert portal.box("pem-certificate") == served["certificate"]
    assert portal.box("pem-chain") == served["chain"]

    dialog = portal.revoke("cACompromise")
    assert "every certificate below it" in dialog.text
    confirm = dialog.find_element(By.CSS_SELECTOR, "button[data-confirm='revoke']")
    typed = dialog.find_element(By.CSS_SELECTOR, "#revoke-confirm-name")
    assert not confirm.is_enabled()
    typed.send_keys("fleet.example.org")  # not its name
    assert not confirm.is_enabled()
    typed.clear()
    typed.send_keys(cell)
    portal.wait(lambda d: confirm.is_enabled())
    confirm.click()
    portal.wait(lambda d: d.find_element(By.CSS_SELECTOR, "main h2 .badge.revoked"))
    assert "Revoked, with the 2 certificates it issued" in portal.find("main").text
    portal.assert_shows_only_text()
    assert portal.certificate(cell)["revocation_reason"] == "cACompromise"

    portal.open(f"#/certificate/{device}")  # revoked with its CA
    served = portal.certificate(device)
    assert served["status"] == "revoked" and served["revoked_with"] == cell
    assert portal.find("dd[data-field='Revoked with']").text == cell
    assert portal.box("pem-certificate") == served["certificate"]
    assert served["chain"] == ""
    assert portal.find("[data-no-chain]").text == (
        "None is served: no chain through a revoked CA verifies."
    )
    assert portal.driver.find_elements(By.CSS_SELECTOR, "#revoke-form, #pem-chain") == []

    assert cell not in portal.parent_choices("device")  # it issues nothing more
    assert "fleet.example.org" in portal.parent_choices("device")
    portal.open("#/")
    row = portal.find(f".node[data-fqdn='{cell}']")
    assert row.get_attribute("data-status") == "revoked"
    assert row.text.split("\n")[:2] == [cell, "Intermediate"] and "revoked" in row.text

    # deleted, with what it issued, once its name is typed
    portal.open(f"#/certificate/{cell}")
    portal.find("#delete-button").click()
    dialog = portal.find("dialog#delete-dialog[open]")
    portal.assert_shows_only_text()
    assert "every certificate below it" in dialog.text
    assert "stays on its issuer's CRL" in dialog.text
    assert portal.commands()["iotcert"].endswith(f"iotcert delete '{cell}' --cascade")
    confirm = dialog.find_element(By.CSS_SELECTOR, "button[data-confirm='delete']")
    typed = dialog.find_element(By.CSS_SELECTOR, "#delete-confirm-name")
    assert not confirm.is_enabled()
    typed.send_keys(cell)
    portal.wait(lambda d: confirm.is_enabled())
    confirm.click()
    notice = portal.find("main p.notice")
    assert portal.find("main h2").text == f"Deleted {cell}"
    assert notice.text == "Deleted, with the 2 certificates below it."
    portal.assert_shows_only_text()
    for gone in (cell, server, device):
        with pytest.raises(urllib.error.HTTPError) as missing:
            portal.certificate(gone)
        missing.value.close()  # the answer's connection, not left to the garbage collector
        assert missing.value.code == 404
    portal.open("#/")
    assert portal.driver.find_elements(By.CSS_SELECTOR, f".node[data-fqdn='{cell}']") == []
    assert portal.console_errors() == []


def test_the_page_behind_a_trailing_slash_is_the_page(portal: Portal) -> None:
    for address, route in (("/portal/", "#/"), ("/portal/#/certificate/example.com", "")):
        portal.driver.get(f"{portal.url}{address}")
        portal.ready(route or "#/certificate/example.com")
        assert urlsplit(portal.driver.current_url).path == "/portal"
        portal.assert_shows_only_text()
    assert portal.box("pem-certificate") == portal.certificate("example.com")["certificate"]
    portal.open("#/")
    assert portal.find(".node[data-fqdn='example.com']").get_attribute("data-status") == "active"
    assert portal.console_errors() == []


def test_a_bulk_is_shown_as_issued_with_every_key_in_one_box(portal: Portal) -> None:
    """What a person sees after issuing several devices at once: each device with its type and
    serial, as the API lists them, and all the keys in the one box shown this once."""
    first = portal.create("device", parent_fqdn="cell1.devices.example.com", count="3")

    assert portal.find("main h2").text == "Issued 3 devices"
    listed = [item.text for item in portal.driver.find_elements(By.CSS_SELECTOR, "ul.issued li")]
    fqdns = [line.split(" ")[0] for line in listed]
    assert fqdns[0] == first and len(set(fqdns)) == 3
    for line, fqdn in zip(listed, fqdns, strict=True):
        assert line == f"{fqdn} Client, serial {portal.certificate(fqdn)['serial']}"
    assert portal.find(".warning h3").text == "3 private keys: shown this once"
    keys = portal.box("issued-key")
    assert [line for line in keys.splitlines() if line.startswith("# ")] == [
        f"# {fqdn}" for fqdn in fqdns
    ]
    assert keys.count("-----BEGIN PRIVATE KEY-----") == 3
    portal.assert_shows_only_text()
    assert portal.console_errors() == []


def test_the_key_store_is_chosen_on_the_form_and_shown_on_the_page(portal: Portal) -> None:
    portal.open("#/create/root")
    choices = Select(portal.find("#field-key_store")).options
    assert [(option.get_attribute("value"), option.text) for option in choices] == [
        ("", "the service's default"), ("file", "file"), ("kms", "kms"), ("pkcs11", "pkcs11"),
    ]  # fmt: skip
    assert "never leave their store" in portal.find("#field-key_store-hint").text

    portal.fill("fqdn", "kms.example.org")
    portal.fill("key_store", "kms")
    portal.find("form[data-kind] button[type=submit]").click()
    error = portal.wait(
        lambda d: d.find_element(By.CSS_SELECTOR, "[data-error-for='key_store']").text or None
    )
    assert error == "key_store: kms is not offered by this deployment; it offers file"
    portal.console_errors()  # the refused request's 400

    assert portal.create("root", fqdn="file.example.org", key_store="file") == "file.example.org"
    assert "--key-store 'file'" in portal.commands()["iotcert"]
    portal.open("#/certificate/file.example.org")
    assert portal.find("dd[data-field='Key store']").text == "file"
    assert portal.driver.find_elements(By.CSS_SELECTOR, "dd[data-field='Key ID']") == []


def test_what_expires_soon_is_listed_fleet_wide_soonest_first(portal: Portal) -> None:
    portal.create("root", fqdn="expiring.example.org")
    portal.create("intermediate", fqdn="cell.expiring.example.org")
    later = portal.create("device", parent_fqdn="cell.expiring.example.org", validity_days="20")
    sooner = portal.create("device", parent_fqdn="cell.expiring.example.org", validity_days="5")
    portal.open("#/expiring")
    assert portal.find("main h2").text == "Expiring within 30 days"
    rows = portal.driver.find_elements(By.CSS_SELECTOR, "table.expiring tbody tr")
    listed = [row.get_attribute("data-fqdn") for row in rows]
    assert listed.index(sooner) < listed.index(later)
    cells = rows[listed.index(sooner)].find_elements(By.TAG_NAME, "td")
    assert [cell.text for cell in cells[1:3]] == ["Client", "cell.expiring.example.org"]
    assert cells[4].text in ("4 days", "5 days")
    assert "iotcert expiring --within-days 30" in portal.commands()["iotcert"]
    portal.open("#/expiring?days=1")
    assert portal.find("main .notice").text == "Nothing active expires within 1 days."
