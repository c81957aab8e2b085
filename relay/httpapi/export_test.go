package httpapi

// Waiting reports how many scrapes wait for a refresh another scrape runs.
func (c *QueueCollector) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiting
}
