#pragma once
// Directive tables for the tests, the benchmark and the fuzzer that mirror DESIGN.md's proxy,
// solverd and agent configurations (the daemons own their real tables).
#include <string_view>

#include "tether/config/config.hpp"

namespace tether::config::testing {

const Schema& proxySchema();
const Schema& solverdSchema();
const Schema& agentSchema();
// "proxy", "solverd" or "agent"; null for another name.
const Schema* schemaNamed(std::string_view name);

}  // namespace tether::config::testing
