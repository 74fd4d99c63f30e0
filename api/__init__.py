"""Herald's GraphQL API: strawberry types, thin resolvers and the Starlette app."""
