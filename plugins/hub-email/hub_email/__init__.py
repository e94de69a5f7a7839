"""The hub-email plugin: send e-mail through SMTP (STARTTLS, SSL, attachments)."""
