"""What every use case stands on: the context, the database handle, storage, paging, the URL policy."""
