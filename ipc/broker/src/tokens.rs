//! The tokens the broker accepts, and which of them are in use.

use weft_proto::{Identity, Token};

use crate::{ClientKind, access::BusAccess};

/// One accepted token.
struct Grant {
    token: Token,
    kind: ClientKind,
    /// The app instance for app tokens; `None` for command-line tokens.
    identity: Option<Identity>,
    /// What it may do on the bus.
    access: BusAccess,
    /// The live connection an app token authenticated, if any.
    active: Option<u64>,
}

/// Why a token cannot authenticate a connection now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    Unknown,
    InUse,
}

/// The table of granted tokens. Lookups compare every entry in constant time per entry,
/// so the time taken does not reveal how much of a guessed token was right.
#[derive(Default)]
pub(crate) struct Tokens {
    grants: Vec<Grant>,
}

impl Tokens {
    pub(crate) fn grant(
        &mut self,
        token: Token,
        kind: ClientKind,
        identity: Option<Identity>,
        access: BusAccess,
    ) {
        self.revoke(&token);
        self.grants.push(Grant {
            token,
            kind,
            identity,
            access,
            active: None,
        });
    }

    pub(crate) fn revoke(&mut self, token: &Token) {
        self.grants.retain(|g| !g.token.ct_eq(token));
    }

    /// Binds `token` to connection `conn`, returning its kind, app identity and access.
    pub(crate) fn claim(
        &mut self,
        token: &Token,
        conn: u64,
    ) -> Result<(ClientKind, Option<Identity>, BusAccess), TokenRefusal> {
        let mut found = None;
        for (i, g) in self.grants.iter().enumerate() {
            if g.token.ct_eq(token) {
                found = Some(i);
            }
        }
        let grant = &mut self.grants[found.ok_or(TokenRefusal::Unknown)?];
        if grant.kind == ClientKind::App {
            if grant.active.is_some() {
                return Err(TokenRefusal::InUse);
            }
            grant.active = Some(conn);
        }
        Ok((grant.kind, grant.identity.clone(), grant.access.clone()))
    }

    /// Frees whatever token connection `conn` had claimed.
    pub(crate) fn release(&mut self, conn: u64) {
        for g in &mut self.grants {
            if g.active == Some(conn) {
                g.active = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity::new_instance("a")
    }

    #[test]
    fn app_tokens_are_single_use_at_a_time() {
        let mut t = Tokens::default();
        let tok = Token::random();
        t.grant(
            tok.clone(),
            ClientKind::App,
            Some(id()),
            BusAccess::default(),
        );
        assert!(t.claim(&tok, 1).is_ok());
        assert_eq!(t.claim(&tok, 2), Err(TokenRefusal::InUse));
        t.release(1);
        assert!(t.claim(&tok, 3).is_ok());
    }

    #[test]
    fn cli_tokens_are_shared_and_unknown_tokens_refused() {
        let mut t = Tokens::default();
        let cli = Token::random();
        t.grant(cli.clone(), ClientKind::Cli, None, BusAccess::default());
        assert_eq!(t.claim(&cli, 1).unwrap().0, ClientKind::Cli);
        assert_eq!(t.claim(&cli, 2).unwrap().0, ClientKind::Cli);
        assert_eq!(t.claim(&Token::random(), 3), Err(TokenRefusal::Unknown));
        t.revoke(&cli);
        assert_eq!(t.claim(&cli, 4), Err(TokenRefusal::Unknown));
    }
}
