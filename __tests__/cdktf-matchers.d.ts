// Type declarations of cdktf's jest matchers (toHaveResourceWithProperties, ...).
import "cdktf/lib/testing/adapters/jest";
