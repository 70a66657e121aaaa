namespace ClipSharp.Server;

/// <summary>A request the server refuses: answered with <see cref="Status"/> and <c>{"error": message}</c>.</summary>
internal sealed class ApiError(int status, string message) : Exception(message)
{
    public int Status { get; } = status;

    public static ApiError BadRequest(string message) => new(400, message);
    public static ApiError NotFound(string message) => new(404, message);
    public static ApiError TooLarge(string message) => new(413, message);
}

/// <summary>An index or model that cannot be served; the message names the file.</summary>
public sealed class ServeException(string message, Exception? inner = null) : Exception(message, inner);
