"""mailpiped --check-config and start-up errors."""
import os

from conftest import BASE_CONFIG, NOBODY, install_app, prog, run


def check(base, *args):
    r = run([prog("mailpiped"), "--base", base, "--check-config", *args])
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def write(base, name, text):
    with open(os.path.join(base, name), "w") as f:
        f.write(text)


def test_no_config_file_means_defaults(base):
    # as an ordinary user ([server] user only matters when started as root)
    r = run([prog("mailpiped"), "--base", base, "--check-config"], user=NOBODY)
    assert r.returncode == 0, r.stderr
    assert b"built-in defaults" in r.stdout


def test_the_default_user_must_exist_when_root(base):
    code, _, err = check(base)
    try:
        import pwd
        pwd.getpwnam("mailpipe")
        assert code == 0, err
    except KeyError:
        assert code == 78
        assert "[server] user 'mailpipe' does not exist" in err


def test_valid_config_and_router(base):
    write(base, "mailpipe.conf", BASE_CONFIG)
    write(base, "router", '<a> = "x"@pipe\n')
    install_app(base, "x", "#!/bin/sh\n")
    code, out, err = check(base)
    assert code == 0, err
    assert "1 records" in out


def test_unknown_key_names_file_and_line(base):
    write(base, "mailpipe.conf", "[pipe]\nprocessors = 2\nprocesors = 3\n")
    code, _, err = check(base)
    assert code == 78
    assert f"{base}/mailpipe.conf:3:" in err


def test_unknown_section(base):
    write(base, "mailpipe.conf", "[server]\n\n[nonsense]\n")
    code, _, err = check(base)
    assert code == 78 and "mailpipe.conf:3:" in err


def test_bad_duration(base):
    write(base, "mailpipe.conf", "[pipe]\ntime-limit = ten minutes\n")
    code, _, err = check(base)
    assert code == 78 and "mailpipe.conf:2:" in err


def test_router_error_names_file_and_line(base):
    write(base, "router", "# ok\n<a> = null\n<b = null\n")
    code, _, err = check(base)
    assert code == 78
    assert f"{base}/router:3:" in err


def test_explicit_config_must_exist(base):
    code, _, err = check(base, "--config", os.path.join(base, "missing.conf"))
    assert code == 78 and "missing.conf" in err


def test_untrusted_app_dir_is_a_warning(base):
    write(base, "mailpipe.conf", "[server]\nuser = nobody\n")
    install_app(base, "open", "#!/bin/sh\n", mode=0o777)
    code, _, err = check(base)
    assert code == 0
    assert "warning: program" in err and "writable by others" in err


def test_transport_command_with_a_path_is_an_error(base):
    write(base, "mailpipe.conf",
          "[server]\nuser = nobody\n[transport tickets]\n"
          "domains = tickets.example\ncommand = /usr/bin/cat\n")
    code, _, err = check(base)
    assert code == 78
    assert "mailpipe.conf:5:" in err and "path" in err


def test_missing_user_is_a_config_error(base):
    write(base, "mailpipe.conf", "[server]\nuser = no-such-user-here\n")
    code, _, err = check(base)
    assert code == 78 and "no-such-user-here" in err


def test_server_refuses_to_start_on_a_bad_config(base):
    write(base, "mailpipe.conf", "[queue]\nfoldering = 7\n")
    r = run([prog("mailpiped"), "--base", base], timeout=10)
    assert r.returncode == 78
    assert b"mailpipe.conf:2:" in r.stderr
