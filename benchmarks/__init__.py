"""`make bench`: the measurement harness of issue 6. Not tests: nothing here is run by `make test` or CI."""
