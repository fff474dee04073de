"""Authentication and research-group isolation, free of any web framework.

- :mod:`.authenticate`: ``Authorization`` header → :class:`~flowdeck.domain.principal.Principal`
- :mod:`.guard`: who may see, create and manage what
- :mod:`.passwords`, :mod:`.tokens`, :mod:`.oidc`: the three kinds of credentials
- :mod:`.users`: managing accounts; :mod:`.bootstrap`: first admin and bind check
- :mod:`.instructions`: the "how to authenticate" page; :mod:`.redact`: log masking
"""
