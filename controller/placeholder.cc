// Placeholder until the state store lands (issue 3).
namespace clusterctl::controller {}
