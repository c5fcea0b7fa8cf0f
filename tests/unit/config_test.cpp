// Unit tests for src/config.
#include <catch2/catch.hpp>
