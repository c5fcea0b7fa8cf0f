// Catch2 entry point for the admin module's tests.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
