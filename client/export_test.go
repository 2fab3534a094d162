package client

// ConnLost reports, for tests, whether the client has no connection (it saw its end).
func ConnLost(c *Client) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn == nil
}
