// Type declarations of cdktn's jest matchers (toHaveResourceWithProperties, ...).
import "cdktn/lib/testing/adapters/jest";
