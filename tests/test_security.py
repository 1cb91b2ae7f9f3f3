"""Passwords are stored as argon2id hashes and verified in constant time by argon2-cffi."""
import pytest

from engine.access.passwords import hash_password, verify_password


def test_password_hash_round_trip_and_rejection():
    h = hash_password("mat-khau-dai")
    assert h.startswith("$argon2id$") and "mat-khau-dai" not in h
    assert verify_password(h, "mat-khau-dai")
    assert not verify_password(h, "mat-khau-sai")
    assert not verify_password("not-a-hash", "mat-khau-dai")


def test_short_passwords_are_refused():
    with pytest.raises(ValueError):
        hash_password("ngan")


def test_only_failed_logins_count_per_account_and_per_address(app, office):
    """A commune office behind one address logs in all morning; a guesser is stopped on the account it
    tries, on the HTML login and on the API token endpoint alike (issue #12 item 7)."""
    import re

    from engine.access import ratelimit

    app.config["SESSION_COOKIE_SECURE"] = False

    def login(username, password):
        http = app.test_client()
        token = re.search(r'name="csrf_token" value="([^"]+)"', http.get("/dang-nhap").get_data(as_text=True)).group(1)
        return http.post("/dang-nhap", data={"username": username, "password": password, "csrf_token": token})
    for _ in range(30):  # more successes than any failure limit: never refused
        assert login("mot_cua1", "matkhau-123").status_code == 302
    for _ in range(ratelimit.LOGIN_FAILURES_PER_ACCOUNT):
        assert login("chuyen_vien1", "sai-mat-khau").status_code == 401
    refused = login("chuyen_vien1", "matkhau-123")  # even the right password, for a while
    assert refused.status_code == 401 and "quá nhiều lần" in refused.get_data(as_text=True)
    api = app.test_client().post("/api/v1/auth/token", json={"username": "chuyen_vien1", "password": "matkhau-123"})
    assert api.status_code == 429 and int(api.headers["Retry-After"]) > 0
    # Other accounts from the same address still log in.
    assert login("lanh_dao1", "matkhau-123").status_code == 302
    assert app.test_client().post("/api/v1/auth/token",
                                  json={"username": "lanh_dao1", "password": "matkhau-123"}).status_code == 200
