// TCP uppercase server: one connection at a time, one line each, answered in upper case.
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

public class TCPServer {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        try (ServerSocket listener = new ServerSocket()) {
            listener.setReuseAddress(true);          // restart during TIME_WAIT
            listener.bind(new InetSocketAddress(port));
            System.out.println("The server is ready to receive");
            while (true) {
                try (Socket conn = listener.accept()) {
                    InputStream in = conn.getInputStream();
                    byte[] buf = new byte[2048];
                    int n = in.read(buf);
                    if (n > 0) {
                        String reply = new String(buf, 0, n, StandardCharsets.UTF_8).toUpperCase();
                        OutputStream out = conn.getOutputStream();
                        out.write(reply.getBytes(StandardCharsets.UTF_8));
                        out.flush();
                    }
                } catch (java.io.IOException e) {
                    System.err.println("connection: " + e.getMessage());
                }
            }
        }
    }
}
