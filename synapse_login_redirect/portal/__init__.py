"""The portal role: password logins sent on to each user's homeserver."""
