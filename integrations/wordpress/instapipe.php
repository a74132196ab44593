<?php
/**
 * Plugin Name:       instapipe
 * Description:       Sends each post to instapipe when it is first published, signed with Standard Webhooks, so instapipe can post it to Instagram.
 * Version:           1.0.0
 * Requires at least: 5.6
 * Requires PHP:      7.4
 * License:           MIT
 *
 * Settings → instapipe: the endpoint URL (https://<function url>/webhooks/wordpress) and the
 * signing secret (whsec_…, the "wordpress" entry of instapipe's webhook secrets). wp-config.php
 * may set INSTAPIPE_ENDPOINT and INSTAPIPE_SECRET instead; they win over the settings page.
 *
 * What is sent, once per post (the first time it becomes published, scheduled posts included):
 * {"type": "post.published", "timestamp": …, "data": {"site", "id", "post_type", "title",
 *  "excerpt", "permalink", "featured_image", "categories", "tags", "published_gmt", "modified_gmt"}}
 * with the headers webhook-id (the same for every retry of this publish), webhook-timestamp and
 * webhook-signature. Sending happens from WP-Cron a few seconds after publishing, so the block
 * editor has stored the terms and the featured image; failures are retried with backoff.
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

const INSTAPIPE_OPTION_ENDPOINT = 'instapipe_endpoint';
const INSTAPIPE_OPTION_SECRET   = 'instapipe_secret';
const INSTAPIPE_SEND_HOOK       = 'instapipe_send';
const INSTAPIPE_MAX_ATTEMPTS    = 6;
const INSTAPIPE_META_ID         = '_instapipe_webhook_id';
const INSTAPIPE_META_STATUS     = '_instapipe_status';

/** The endpoint and secret in effect: wp-config.php constants first, then the settings page. */
function instapipe_config() {
	$endpoint = defined( 'INSTAPIPE_ENDPOINT' ) ? INSTAPIPE_ENDPOINT : get_option( INSTAPIPE_OPTION_ENDPOINT, '' );
	$secret   = defined( 'INSTAPIPE_SECRET' ) ? INSTAPIPE_SECRET : get_option( INSTAPIPE_OPTION_SECRET, '' );
	return array( (string) $endpoint, (string) $secret );
}

/** The HMAC key of a `whsec_<base64>` secret (24 to 64 bytes), or null. */
function instapipe_key( $secret ) {
	if ( 0 !== strpos( $secret, 'whsec_' ) ) {
		return null;
	}
	$key = base64_decode( substr( $secret, 6 ), true );
	if ( false === $key || strlen( $key ) < 24 || strlen( $key ) > 64 ) {
		return null;
	}
	return $key;
}

/** Post types that are sent (filter `instapipe_post_types`). */
function instapipe_post_types() {
	return (array) apply_filters( 'instapipe_post_types', array( 'post' ) );
}

// ---------------------------------------------------------------- first publish

add_action(
	'transition_post_status',
	function ( $new_status, $old_status, $post ) {
		if ( 'publish' !== $new_status || 'publish' === $old_status ) {
			return;
		}
		if ( ! in_array( $post->post_type, instapipe_post_types(), true ) || wp_is_post_revision( $post ) ) {
			return;
		}
		// Only the first publish: unpublishing and publishing again sends nothing new.
		if ( '' !== get_post_meta( $post->ID, INSTAPIPE_META_ID, true ) ) {
			return;
		}
		// One id per publish, kept for every retry, so instapipe de-duplicates them ("." is not allowed).
		$id = 'msg_' . substr( hash( 'sha256', home_url( '/' ) . '|' . $post->ID . '|' . $post->post_modified_gmt ), 0, 32 );
		update_post_meta( $post->ID, INSTAPIPE_META_ID, $id );
		update_post_meta( $post->ID, INSTAPIPE_META_STATUS, 'queued' );
		wp_schedule_single_event( time() + 10, INSTAPIPE_SEND_HOOK, array( $post->ID, 1 ) );
	},
	10,
	3
);

// ---------------------------------------------------------------- sending

/** The request body, in the same encoding every time (wp_json_encode's defaults). */
function instapipe_payload( $post ) {
	$text  = function ( $s ) {
		return html_entity_decode( wp_strip_all_tags( (string) $s ), ENT_QUOTES, 'UTF-8' );
	};
	$terms = function ( $taxonomy ) use ( $post ) {
		$names = wp_get_post_terms( $post->ID, $taxonomy, array( 'fields' => 'names' ) );
		return is_wp_error( $names ) ? array() : array_values( $names );
	};
	$image = get_the_post_thumbnail_url( $post, 'full' );
	return wp_json_encode(
		array(
			'type'      => 'post.published',
			'timestamp' => gmdate( 'c' ),
			'data'      => array(
				'site'           => home_url( '/' ),
				'id'             => $post->ID,
				'post_type'      => $post->post_type,
				'title'          => $text( get_the_title( $post ) ),
				'excerpt'        => $text( get_the_excerpt( $post ) ),
				'permalink'      => get_permalink( $post ),
				'featured_image' => $image ? $image : null,
				'categories'     => $terms( 'category' ),
				'tags'           => $terms( 'post_tag' ),
				'published_gmt'  => get_post_time( 'Y-m-d\TH:i:s\Z', true, $post ),
				'modified_gmt'   => get_post_modified_time( 'Y-m-d\TH:i:s\Z', true, $post ),
			),
		)
	);
}

/** Standard Webhooks: "v1," + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")). */
function instapipe_signature( $key, $id, $timestamp, $body ) {
	return 'v1,' . base64_encode( hash_hmac( 'sha256', $id . '.' . $timestamp . '.' . $body, $key, true ) );
}

add_action(
	INSTAPIPE_SEND_HOOK,
	function ( $post_id, $attempt ) {
		$post = get_post( $post_id );
		$id   = get_post_meta( $post_id, INSTAPIPE_META_ID, true );
		if ( ! $post || 'publish' !== $post->post_status || '' === $id ) {
			return;
		}
		list( $endpoint, $secret ) = instapipe_config();
		$key                       = instapipe_key( $secret );
		if ( '' === $endpoint || null === $key ) {
			update_post_meta( $post_id, INSTAPIPE_META_STATUS, 'not sent: endpoint or secret not configured' );
			return;
		}
		$body      = instapipe_payload( $post );
		$timestamp = time();
		$response  = wp_remote_post(
			$endpoint,
			array(
				'timeout'     => 15,
				'redirection' => 0,
				'body'        => $body,
				'headers'     => array(
					'Content-Type'      => 'application/json',
					'webhook-id'        => $id,
					'webhook-timestamp' => (string) $timestamp,
					'webhook-signature' => instapipe_signature( $key, $id, $timestamp, $body ),
				),
			)
		);
		$code = is_wp_error( $response ) ? 0 : (int) wp_remote_retrieve_response_code( $response );
		if ( $code >= 200 && $code < 300 ) {
			$answer = json_decode( wp_remote_retrieve_body( $response ), true );
			$what   = is_array( $answer ) && isset( $answer['post_id'] ) ? 'post ' . $answer['post_id'] : 'acknowledged';
			update_post_meta( $post_id, INSTAPIPE_META_STATUS, 'sent: ' . sanitize_text_field( $what ) );
			return;
		}
		// A refusal other than a timeout or throttling will not change on retry.
		$final = $code >= 400 && $code < 500 && 408 !== $code && 429 !== $code;
		$why   = is_wp_error( $response ) ? $response->get_error_message() : 'HTTP ' . $code;
		if ( $final || $attempt >= INSTAPIPE_MAX_ATTEMPTS ) {
			update_post_meta( $post_id, INSTAPIPE_META_STATUS, 'failed: ' . sanitize_text_field( $why ) );
			return;
		}
		update_post_meta( $post_id, INSTAPIPE_META_STATUS, 'retrying after ' . sanitize_text_field( $why ) );
		// 2, 4, 8, 16, 32 minutes.
		wp_schedule_single_event( time() + 60 * ( 2 ** $attempt ), INSTAPIPE_SEND_HOOK, array( $post_id, $attempt + 1 ) );
	},
	10,
	2
);

// ---------------------------------------------------------------- settings page

add_action(
	'admin_init',
	function () {
		register_setting(
			'instapipe',
			INSTAPIPE_OPTION_ENDPOINT,
			array(
				'type'              => 'string',
				'sanitize_callback' => function ( $value ) {
					$value = esc_url_raw( trim( (string) $value ), array( 'https', 'http' ) );
					if ( '' !== $value && 0 !== strpos( $value, 'https://' ) ) {
						add_settings_error( INSTAPIPE_OPTION_ENDPOINT, 'instapipe_endpoint', __( 'The endpoint must be an https:// URL.', 'instapipe' ) );
						return get_option( INSTAPIPE_OPTION_ENDPOINT, '' );
					}
					return $value;
				},
				'default'           => '',
			)
		);
		register_setting(
			'instapipe',
			INSTAPIPE_OPTION_SECRET,
			array(
				'type'              => 'string',
				'sanitize_callback' => function ( $value ) {
					$value = trim( (string) $value );
					if ( '' === $value ) {
						// Left blank: keep the stored secret (it is never shown again).
						return get_option( INSTAPIPE_OPTION_SECRET, '' );
					}
					if ( null === instapipe_key( $value ) ) {
						add_settings_error( INSTAPIPE_OPTION_SECRET, 'instapipe_secret', __( 'The secret must be whsec_ followed by the base64 of 24 to 64 bytes.', 'instapipe' ) );
						return get_option( INSTAPIPE_OPTION_SECRET, '' );
					}
					return $value;
				},
				'default'           => '',
			)
		);
	}
);

add_action(
	'admin_menu',
	function () {
		add_options_page( 'instapipe', 'instapipe', 'manage_options', 'instapipe', 'instapipe_settings_page' );
	}
);

function instapipe_settings_page() {
	if ( ! current_user_can( 'manage_options' ) ) {
		return;
	}
	list( $endpoint, $secret ) = instapipe_config();
	$fixed                     = defined( 'INSTAPIPE_ENDPOINT' ) || defined( 'INSTAPIPE_SECRET' );
	?>
	<div class="wrap">
		<h1>instapipe</h1>
		<p><?php esc_html_e( 'Each post is sent to instapipe once, when it is first published.', 'instapipe' ); ?></p>
		<?php if ( $fixed ) : ?>
			<p><em><?php esc_html_e( 'wp-config.php sets INSTAPIPE_ENDPOINT or INSTAPIPE_SECRET; those values are used.', 'instapipe' ); ?></em></p>
		<?php endif; ?>
		<form method="post" action="options.php">
			<?php settings_fields( 'instapipe' ); ?>
			<table class="form-table" role="presentation">
				<tr>
					<th scope="row"><label for="instapipe_endpoint"><?php esc_html_e( 'Endpoint URL', 'instapipe' ); ?></label></th>
					<td>
						<input name="<?php echo esc_attr( INSTAPIPE_OPTION_ENDPOINT ); ?>" id="instapipe_endpoint" type="url" class="regular-text"
							value="<?php echo esc_attr( get_option( INSTAPIPE_OPTION_ENDPOINT, '' ) ); ?>"
							placeholder="https://…lambda-url…/webhooks/wordpress" />
					</td>
				</tr>
				<tr>
					<th scope="row"><label for="instapipe_secret"><?php esc_html_e( 'Signing secret', 'instapipe' ); ?></label></th>
					<td>
						<input name="<?php echo esc_attr( INSTAPIPE_OPTION_SECRET ); ?>" id="instapipe_secret" type="password" class="regular-text" autocomplete="new-password"
							value="" placeholder="<?php echo '' === $secret ? 'whsec_…' : esc_attr__( 'saved; leave blank to keep it', 'instapipe' ); ?>" />
						<p class="description"><?php esc_html_e( 'The "wordpress" entry of instapipe\'s webhook secrets (whsec_…). It is never shown again.', 'instapipe' ); ?></p>
					</td>
				</tr>
			</table>
			<?php submit_button(); ?>
		</form>
		<p><?php echo '' !== $endpoint && null !== instapipe_key( $secret ) ? esc_html__( 'Ready: new posts will be sent.', 'instapipe' ) : esc_html__( 'Not configured: nothing is sent.', 'instapipe' ); ?></p>
	</div>
	<?php
}
