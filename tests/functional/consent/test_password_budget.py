"""One password-guessing budget per customer across the login page and the password grant; hashes upgraded on login."""

from __future__ import annotations

from gateway.security.passwords import PasswordHasher
from gateway.storage.models import ClientRole, RetailCustomer
from tests.functional.oauth.helpers import PASSWORD, basic, make_client


def _self_access_client(db, services, customer):
    return make_client(
        db,
        services.settings,
        services.digester,
        name="Alice's own",
        roles=(ClientRole.SELF_ACCESS,),
        grant_types=("password", "refresh_token"),
        owner_customer_id=customer.id,
    )


def _password_grant(testapp, client, password: str, status: int | str = "*"):
    return testapp.post(
        "/oauth/token",
        {"grant_type": "password", "username": "alice", "password": password},
        headers={"Authorization": basic(client.client_id, client.client_secret)},
        status=status,
    )


def test_password_grant_failures_use_up_the_login_pages_budget(browser, db, services, alice):
    client = _self_access_client(db, services, alice)
    for _ in range(10):
        _password_grant(browser.app, client, "wrong password here")
    page = browser.app.get("/login")
    form = page.forms["login-form"]
    form["username"], form["password"] = "alice", PASSWORD
    form.submit(status=429)


def _weaken(db, customer: RetailCustomer) -> str:
    customer.password_hash = PasswordHasher(time_cost=2, memory_cost_kib=8).hash(PASSWORD)
    db.commit()
    return customer.password_hash


def test_login_upgrades_a_hash_made_with_other_parameters(browser, db, services, alice):
    _weaken(db, alice)
    browser.login(username="alice", password=PASSWORD)
    db.expire_all()
    assert not services.passwords.needs_rehash(db.get(RetailCustomer, alice.id).password_hash)


def test_password_grant_upgrades_a_hash_made_with_other_parameters(testapp, db, services, alice):
    client = _self_access_client(db, services, alice)
    _weaken(db, alice)
    _password_grant(testapp, client, PASSWORD, status=200)
    db.expire_all()
    assert not services.passwords.needs_rehash(db.get(RetailCustomer, alice.id).password_hash)
