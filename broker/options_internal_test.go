package broker

import "testing"

// TestTopicCacheSizeOption: Options.TopicCacheSize reaches every router;
// zero means DefaultTopicCacheSize.
func TestTopicCacheSizeOption(t *testing.T) {
	for _, tt := range []struct{ set, want int }{{0, DefaultTopicCacheSize}, {3, 3}} {
		b := New(&Options{TopicCacheSize: tt.set})
		for _, mt := range []string{"json", "fix"} {
			if got := b.router(mt).cacheSize; got != tt.want {
				t.Errorf("TopicCacheSize %d: router(%q).cacheSize = %d, want %d", tt.set, mt, got, tt.want)
			}
		}
		b.Close()
	}
}
