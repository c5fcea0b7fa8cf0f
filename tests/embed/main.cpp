// Catch2 entry point for the embedding API's tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
