// Placeholder until the SSH layer lands (issue 3).
namespace clusterctl::reconcilers {}
