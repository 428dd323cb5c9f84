package httpapi

import "github.com/labstack/echo/v4"

// sessionRoutes registers the endpoints with which users see and end their
// sessions and change their password.
func (s *Server) sessionRoutes(v1 *echo.Group) {}
