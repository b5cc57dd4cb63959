//! Integration tests of the built-in connectors against real peers started by the tests on
//! loopback: sshd, an SMTP server (aiosmtpd), HTTP servers (hyper), libvirt's test driver.
//! `.ci/deps-connectors.sh` installs the packaged ones; a missing one fails the tests.

mod support;

mod ansible;
mod check;
mod command;
mod email;
mod http;
mod noop_sleep;
mod report;
mod snapshot;
