// Upstreams from a resolv.conf file: what "resolv.conf[:PATH]" in an upstream list stands for.
#pragma once

#include <string>
#include <vector>

#include "readyns/options.hpp"

namespace readyns::config {

// The nameservers of a resolv.conf file as upstreams ("10.0.0.2:53", "[fd00::2]:53"), in file
// order and without repeats, leaving out any that is one of our `listen` addresses (queries sent
// there would come back to us, as NodeLocal DNSCache avoids too). Nameservers we cannot use,
// such as link-local IPv6 with a %scope, are skipped as glibc skips bad lines. Throws BadValue
// if the file cannot be read or leaves no nameserver.
std::vector<std::string> read_resolv_conf(const std::string& path,
                                          const std::vector<std::string>& listen);

// Replaces each resolv.conf reference in o.upstreams and in the forward zones with the
// nameservers it names, using o.listen for the loop check. Throws InvalidSetting keyed by the
// reference ("upstreams[0]", "forward[1].upstreams[0]").
void expand_resolv_conf(Options& o);

}  // namespace readyns::config
